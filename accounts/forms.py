from django import forms


class ProfileForm(forms.Form):
    name = forms.CharField(max_length=150, required=False, label="Name")
